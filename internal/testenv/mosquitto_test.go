package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestMosquitto checks what the other packages' tests rely on: password and
// TLS (with client certificates) listeners work, and a restarted broker keeps
// retained messages and a persistent subscriber's queued messages.
func TestMosquitto(t *testing.T) {
	Integration(t)
	m := StartMosquitto(t, WithPassword("u", "p"), WithClientCerts())

	connect := func(url, id string, clean bool, tlsConf *tls.Config) (mqtt.Client, chan mqtt.Message) {
		t.Helper()
		msgs := make(chan mqtt.Message, 100)
		o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id).SetUsername("u").SetPassword("p").
			SetCleanSession(clean).SetTLSConfig(tlsConf).SetConnectTimeout(5 * time.Second).
			SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) { msgs <- msg })
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s: %v", url, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c, msgs
	}
	// A persistent subscriber, then offline while a message is queued for it.
	sub, _ := connect(m.URL(), "sub", false, nil)
	if tok := sub.Subscribe("q/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	sub.Disconnect(100)

	// Publish over TLS with a client certificate.
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(m.TLS.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(m.TLS.ClientCert, m.TLS.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := connect(m.TLSURL(), "pub", true, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
	for _, topic := range []string{"r/kept", "q/queued"} {
		if tok := pub.Publish(topic, 1, topic == "r/kept", "hello"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	pub.Disconnect(100)

	m.Stop()
	if m.Running() {
		t.Fatal("Running after Stop")
	}
	m.Start()

	_, msgs := connect(m.URL(), "sub", false, nil) // the queued message comes with the session
	got := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for !got["q/queued"] {
		select {
		case msg := <-msgs:
			got[msg.Topic()] = true
		case <-deadline:
			t.Fatal("the queued message did not survive the broker restart")
		}
	}
	r, rmsgs := connect(m.URL(), "reader", true, nil)
	r.Subscribe("r/#", 1, nil)
	select {
	case msg := <-rmsgs:
		if msg.Topic() != "r/kept" || !msg.Retained() {
			t.Fatalf("got %s retained=%v", msg.Topic(), msg.Retained())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the retained message did not survive the broker restart")
	}
}
