module example.com/fd-leak

go 1.22
