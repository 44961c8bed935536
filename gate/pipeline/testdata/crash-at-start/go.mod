module example.com/crash-at-start

go 1.22
