module example.com/request-leak

go 1.22

require example.com/sessions v1.0.0
