module example.com/hungry-dependency

go 1.22
