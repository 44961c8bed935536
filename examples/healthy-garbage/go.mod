module example.com/healthy-garbage

go 1.22
