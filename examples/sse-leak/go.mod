module example.com/sse-leak

go 1.22
