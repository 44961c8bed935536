module example.com/healthy-json

go 1.22
