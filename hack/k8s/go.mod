// The pins of each Kubernetes release live in pins/<minor>.mod and .sum; hack/build-k8s.sh
// builds with `go build -modfile=pins/<minor>.mod`, which needs a go.mod here to find the
// module root but never reads it.
module concierge.local/hack/k8s

go 1.22.0
