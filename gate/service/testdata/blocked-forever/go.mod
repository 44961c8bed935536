module example.com/blocked-forever

go 1.22
