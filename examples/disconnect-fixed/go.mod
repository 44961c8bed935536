module example.com/disconnect-fixed

go 1.22
