module example.com/sse-fixed

go 1.22
