// The kube-cert-agent's command, run in a pod beside kube-controller-manager: `sleep` keeps the
// pod running until it is stopped, and `print` writes the cluster signing certificate and key as
// upstream Pinniped's agent does, so that either project's image can serve as the other's agent.
//
// It is Go, not Node like the rest of the Concierge: a sleeping Node process holds about 40 MiB,
// more than the agent pod's 32 Mi limit, where this binary holds about 1 MiB.
package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `usage:
  pinniped-concierge-kube-cert-agent sleep
  pinniped-concierge-kube-cert-agent print [CERT_FILE KEY_FILE]

print reads the files named by its arguments, or else by CERT_PATH and KEY_PATH, and writes
{"tls.crt": base64, "tls.key": base64} and a newline to standard output.`

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintf(stderr, "missing subcommand\n%s\n", usage)
		return 2
	}
	switch args[0] {
	case "sleep":
		if len(args) != 1 {
			fmt.Fprintf(stderr, "sleep takes no arguments\n%s\n", usage)
			return 2
		}
		// As PID 1 the process would ignore SIGTERM without a handler, and the pod would wait
		// out its whole grace period.
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		<-stop
		return 0
	case "print":
		var certPath, keyPath string
		switch len(args) {
		case 1:
			certPath, keyPath = getenv("CERT_PATH"), getenv("KEY_PATH")
		case 3:
			certPath, keyPath = args[1], args[2]
		default:
			fmt.Fprintf(stderr, "print takes no arguments or two\n%s\n", usage)
			return 2
		}
		return printPair(certPath, keyPath, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "invalid subcommand %q\n%s\n", args[0], usage)
		return 2
	}
}

func printPair(certPath, keyPath string, stdout, stderr io.Writer) int {
	cert, err := os.ReadFile(certPath)
	if err != nil {
		fmt.Fprintf(stderr, "could not read CERT_PATH: %v\n", err)
		return 1
	}
	key, err := os.ReadFile(keyPath)
	if err != nil {
		fmt.Fprintf(stderr, "could not read KEY_PATH: %v\n", err)
		return 1
	}
	// Upstream encodes with encoding/json in the same field order, which the Concierge parses.
	err = json.NewEncoder(stdout).Encode(&struct {
		Cert string `json:"tls.crt"`
		Key  string `json:"tls.key"`
	}{
		Cert: base64.StdEncoding.EncodeToString(cert),
		Key:  base64.StdEncoding.EncodeToString(key),
	})
	if err != nil {
		fmt.Fprintf(stderr, "failed to write output: %v\n", err)
		return 1
	}
	return 0
}
