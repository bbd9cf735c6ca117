module github.com/s2-sidecar/s2-sidecar/clients/go

go 1.19

// The versions Debian 12 packages, which build.sh uses offline (GOPATH mode, no go.sum needed).
// For a module-mode build with the Go proxy, run `go mod tidy` once (it writes go.sum).
require (
	google.golang.org/grpc v1.33.3
	google.golang.org/protobuf v1.28.1
)
