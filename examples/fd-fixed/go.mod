module example.com/fd-fixed

go 1.22
