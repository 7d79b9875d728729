package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// Raw MQTT 3.1.1 packets, written by hand: a client library refuses to send the malformed
// ones, and the login flood is cheaper without one.

// remainingLength encodes n as MQTT's variable-length integer.
func remainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// mqttString is a length-prefixed string; s may hold any bytes, invalid UTF-8 included.
func mqttString(s string) []byte {
	return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...)
}

// packet is a fixed header byte, the remaining length, and body.
func packet(header byte, body []byte) []byte {
	return append(append([]byte{header}, remainingLength(len(body))...), body...)
}

// connectPacket is a CONNECT with a clean session, a 60 s keepalive, and username and
// password; protocol is normally "MQTT".
func connectPacket(protocol, clientID, user, password string) []byte {
	body := mqttString(protocol)
	body = append(body, 4, 0xC2, 0, 60) // level 4 (3.1.1); flags: username, password, clean session
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString(user)...)
	body = append(body, mqttString(password)...)
	return packet(0x10, body)
}

// publishPacket is a PUBLISH at qos (0..3, 3 being invalid) with packet id 1 when qos > 0.
func publishPacket(topic string, qos byte, payload []byte) []byte {
	body := mqttString(topic)
	if qos > 0 {
		body = append(body, 0, 1)
	}
	return packet(0x30|qos<<1, append(body, payload...))
}

// CONNACK return codes of MQTT 3.1.1 that the cases expect.
const (
	connackAccepted      = 0
	connackBadCredential = 4
	connackNotAuthorized = 5
)

// readConnack reads a CONNACK and returns its return code.
func readConnack(c net.Conn) (byte, error) {
	var b [4]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		return 0, err
	}
	if b[0] != 0x20 || b[1] != 2 {
		return 0, fmt.Errorf("not a CONNACK: % x", b)
	}
	return b[3], nil
}

// attackerSource is the i-th loopback address (from 0) attacks come from: 127.0.0.2, 127.0.0.3
// and so on. Legitimate units connect from 127.0.0.1, so the hub's per-source bounds (admission,
// the wrong-secret throttle) can tell them from an attack, as they tell an attacker's host from
// the units of a site; on Linux every address of 127/8 is the loopback.
func attackerSource(i int) string { return fmt.Sprintf("127.0.0.%d", 2+i) }

// maxAttackerSources is how many attackerSource addresses there are: 127.0.0.2 to 127.0.0.254.
const maxAttackerSources = 253

// attackerSources is attackerSource of from, from+1, ... from+n-1.
func attackerSources(from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = attackerSource(from + i)
	}
	return out
}

// dialFrom opens a TCP connection from the loopback address src ("" for the kernel's choice,
// 127.0.0.1 towards a hub on 127.0.0.1) to addr.
func dialFrom(src, addr string, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d.Dial("tcp", addr)
}

// abandon closes an attacker's connection with a reset, as a flooding client would: no FIN
// handshake and no TIME_WAIT on either side, which would otherwise hold one of the source
// address's 28,000 ephemeral ports per connection for a minute.
func abandon(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// connackRefused is a CONNACK's return code other than accepted: the hub refused the login.
type connackRefused byte

func (c connackRefused) Error() string { return fmt.Sprintf("CONNACK return code %d", byte(c)) }

// rawConnect dials addr and logs in as id; it returns the connection once the CONNACK accepted,
// or a connackRefused error.
func rawConnect(addr, id, secret string) (net.Conn, error) {
	c, err := dialFrom("", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(connectPacket("MQTT", id, id, secret)); err != nil {
		c.Close()
		return nil, err
	}
	code, err := readConnack(c)
	if err == nil && code != connackAccepted {
		err = connackRefused(code)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// waitClosed reads from c until the peer closes it or within passes. It reports whether the
// peer closed it and how long that took; whatever the peer sent first (a CONNACK, a
// DISCONNECT with a reason) is read and ignored.
func waitClosed(c net.Conn, within time.Duration) (bool, time.Duration) {
	start := time.Now()
	c.SetReadDeadline(start.Add(within))
	buf := make([]byte, 4096)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return false, time.Since(start)
		}
		return closedByPeer(err), time.Since(start)
	}
}

// closedByPeer tells a connection the peer closed (EOF, also in the middle of a packet, reset,
// broken pipe) from other errors.
func closedByPeer(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
