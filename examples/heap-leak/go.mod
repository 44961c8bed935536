module example.com/heap-leak

go 1.22
