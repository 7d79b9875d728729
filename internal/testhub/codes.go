package testhub

import (
	"crypto/rand"
	"encoding/base64"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
)

// Pickup is a pickup code as the resident has it, in the clear.
type Pickup struct {
	Parcel  string
	Door    int
	Code    string
	Expires time.Time // zero: in an hour
}

// SendCodes publishes to device id the code set a hub would send: version, and each pickup's
// code hashed under a salt of its own.
func (h *Hub) SendCodes(id string, version uint64, ps ...Pickup) {
	h.t.Helper()
	set := wire.CodeSet{V: wire.Version, Version: version, Issued: time.Now().UnixMilli(), Codes: []wire.Code{}}
	for _, p := range ps {
		salt := make([]byte, wire.CodeSaltBytes)
		rand.Read(salt)
		exp := p.Expires
		if exp.IsZero() {
			exp = time.Now().Add(time.Hour)
		}
		set.Codes = append(set.Codes, wire.Code{Parcel: p.Parcel, Door: p.Door, Expires: exp.UnixMilli(),
			Salt: base64.StdEncoding.EncodeToString(salt), Hash: base64.StdEncoding.EncodeToString(wire.HashCode(p.Code, salt))})
	}
	b, err := wire.Marshal(set)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := h.Publish(wire.Topic(id, wire.ChannelCodes), b, false, 1); err != nil {
		h.t.Fatal(err)
	}
}
