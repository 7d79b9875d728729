package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lockerhub/lockerhub/fleet/wire"
	"github.com/lockerhub/lockerhub/internal/atomicfile"
)

// state is what the agent must remember across restarts besides the outbox: the setpoints
// operators chose, and every command it accepted until that command can no longer arrive, so
// that a redelivered command is answered again and never executed twice. It is one small JSON
// file, replaced atomically (and fsynced) on every change; commands are rare.
type state struct {
	path string
	mu   sync.Mutex
	data stateData
}

type stateData struct {
	HeaterSetpointC     *float64                  `json:"heater_setpoint_c,omitempty"`
	CompressorSetpointC *float64                  `json:"compressor_setpoint_c,omitempty"`
	Commands            map[string]*commandRecord `json:"commands"`
}

// commandRecord is a command the agent has seen. Done is false between accepting a command and
// finishing it: a record found so after a restart means the agent died mid-command.
type commandRecord struct {
	Expires int64        `json:"expires"`
	Done    bool         `json:"done"`
	Outcome wire.Outcome `json:"outcome,omitempty"`
	Detail  string       `json:"detail,omitempty"`
}

func openState(dir string) (*state, error) {
	s := &state{path: filepath.Join(dir, "state.json"), data: stateData{Commands: map[string]*commandRecord{}}}
	if err := readJSONFile(s.path, "state", &s.data); err != nil {
		return nil, err
	}
	if s.data.Commands == nil {
		s.data.Commands = map[string]*commandRecord{}
	}
	return s, nil
}

// readJSONFile decodes the file at path into v, leaving v as it is when there is no file yet
// (a new unit). A damaged file is an error: the agent must not start forgetting what it held.
func readJSONFile(path, what string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", what, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s %s: %w", what, path, err)
	}
	return nil
}

// command returns a copy of the record of command id, if the agent has seen it.
func (s *state) command(id string) (commandRecord, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.data.Commands[id]
	if !ok {
		return commandRecord{}, false
	}
	return *r, true
}

// recordCommand stores r for id durably and forgets commands that expired more than
// wire.MaxCommandTTL ago: by then the hub has stopped waiting for them and no redelivery can
// still be acted upon, since the agent refuses expired commands anyway.
func (s *state) recordCommand(now time.Time, id string, r commandRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	horizon := now.Add(-wire.MaxCommandTTL).UnixMilli()
	for k, old := range s.data.Commands {
		if old.Expires < horizon {
			delete(s.data.Commands, k)
		}
	}
	s.data.Commands[id] = &r
	return s.saveLocked()
}

// setpoint returns the persisted setpoint for the heater or compressor, or def.
func (s *state) setpoint(cooling bool, def float64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.data.HeaterSetpointC
	if cooling {
		p = s.data.CompressorSetpointC
	}
	if p == nil {
		return def
	}
	return *p
}

func (s *state) setSetpoint(cooling bool, c float64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cooling {
		s.data.CompressorSetpointC = &c
	} else {
		s.data.HeaterSetpointC = &c
	}
	return s.saveLocked()
}

func (s *state) saveLocked() error {
	b, err := json.Marshal(&s.data)
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Dir(s.path), filepath.Base(s.path), b, true)
}
