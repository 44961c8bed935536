module example.com/goroutine-leak

go 1.22
