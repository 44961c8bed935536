module example.com/healthy-cache

go 1.22
