module concierge/cmd/pinniped-concierge-kube-cert-agent

go 1.24
