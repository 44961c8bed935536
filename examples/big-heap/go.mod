module example.com/big-heap

go 1.22
