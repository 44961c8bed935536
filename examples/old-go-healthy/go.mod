module example.com/old-go-healthy

go 1.16
