package agent

import (
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
)

// nullStore is a paho.Store that keeps nothing: the outbox already holds every message until
// the hub acknowledges it, and a second copy in paho would be resent as a duplicate.
type nullStore struct{}

var _ paho.Store = nullStore{}

func (nullStore) Open()                             {}
func (nullStore) Put(string, packets.ControlPacket) {}
func (nullStore) Get(string) packets.ControlPacket  { return nil }
func (nullStore) All() []string                     { return nil }
func (nullStore) Del(string)                        {}
func (nullStore) Close()                            {}
func (nullStore) Reset()                            {}
