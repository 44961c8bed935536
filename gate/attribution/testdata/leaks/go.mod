module example.com/leaks

go 1.22

require example.com/reqctx v1.0.0
