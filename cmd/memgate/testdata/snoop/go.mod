module example.com/snoop

go 1.22
