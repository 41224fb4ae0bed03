x = 0.0
y = 0.0
params = 10
