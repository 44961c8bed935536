module example.com/upstream-client-healthy

go 1.22
