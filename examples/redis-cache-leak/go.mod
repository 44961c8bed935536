module example.com/redis-cache-leak

go 1.22
