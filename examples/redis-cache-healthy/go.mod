module example.com/redis-cache-healthy

go 1.22
