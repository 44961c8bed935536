module example.com/old-go-leak

go 1.16
