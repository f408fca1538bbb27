module maxrss

go 1.26
