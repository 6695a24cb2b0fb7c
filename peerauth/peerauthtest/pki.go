// Package peerauthtest makes throwaway certificates for tests of mutual TLS between Envoy (or
// the stand-in) and the sidecars.
package peerauthtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a CA and two certificates it signed, as PEM files in a test's temporary directory:
// a server certificate for "localhost" and 127.0.0.1, and a client certificate with common
// name ClientName.
type PKI struct {
	CA                    string // the CA certificate
	ServerCert, ServerKey string
	ClientCert, ClientKey string
	// Other is a CA that signed nothing here, and OtherClientCert/Key a client certificate
	// from it: a stranger's.
	Other                           string
	OtherClientCert, OtherClientKey string
}

// ClientName is the client certificate's common name.
const ClientName = "envoy"

// New writes a fresh PKI.
func New(t testing.TB) *PKI {
	t.Helper()
	dir := t.TempDir()
	write := func(name string, block *pem.Block) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newCA := func(name string) (*x509.Certificate, *ecdsa.PrivateKey, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(der)
		return cert, key, write(name+".pem", &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	leaf := func(ca *x509.Certificate, caKey *ecdsa.PrivateKey, name string, serial int64, server bool) (string, string) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		if server {
			tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
			tmpl.DNSNames = []string{"localhost"}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+"-"+ca.Subject.CommonName+".pem", &pem.Block{Type: "CERTIFICATE", Bytes: der}),
			write(name+"-"+ca.Subject.CommonName+".key", &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := &PKI{}
	ca, caKey, caPath := newCA("tollgate-test-ca")
	p.CA = caPath
	p.ServerCert, p.ServerKey = leaf(ca, caKey, "localhost", 2, true)
	p.ClientCert, p.ClientKey = leaf(ca, caKey, ClientName, 3, false)
	other, otherKey, otherPath := newCA("stranger-ca")
	p.Other = otherPath
	p.OtherClientCert, p.OtherClientKey = leaf(other, otherKey, ClientName, 2, false)
	return p
}
