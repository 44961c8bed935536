module example.com/panics-under-load

go 1.22
