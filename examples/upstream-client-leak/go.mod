module example.com/upstream-client-leak

go 1.22
