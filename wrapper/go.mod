module cloudtaser.local/wrapper

go 1.24.0
