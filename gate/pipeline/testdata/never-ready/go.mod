module example.com/never-ready

go 1.22
