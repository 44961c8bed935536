module example.com/disconnect-leak

go 1.22
