module example.com/upstream-clients

go 1.22
