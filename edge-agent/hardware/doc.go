// Package hardware is the boundary between the edge agent and the physical unit it runs on: the
// doors with their locks and sensors, the thermometers, and the one actuator that keeps the unit
// at temperature (a heater in a locker bank, a compressor in a fridge).
//
// The agent sees the unit only through Device. Read returns everything the sensors report at
// one moment; Unlock, Lock, SetHeater and SetCompressor drive the outputs. Policy lives in the
// agent, not here: the thermostat, when a door counts as forced or ajar, and what a failed
// sensor means are all decided above this interface, so a driver reports and actuates and
// nothing more.
//
// A real driver plugs in by implementing Device for its I/O (GPIO, Modbus, a vendor board); the
// edge-agent command then passes it to agent.New in place of the simulator, and nothing in the
// agent changes. Such a driver must be safe for concurrent use, number doors from 1,
// return ErrNoSuchDoor and ErrUnsupported (possibly wrapped) where Device says so, and report a
// temperature sensor it cannot read as Temp{OK: false} rather than failing the whole Read.
//
// A unit with a keypad for pickup codes also implements Keypad: its driver delivers every code
// typed at the keypad, as typed, and the agent checks it against the code set the hub sent and
// unlocks the code's door itself. A door so released reports AccessRemote like any Unlock: only
// the agent knows a code was behind it. A unit without a keypad simply does not implement
// Keypad, and the agent then takes no codes.
//
// Simulator is the Device used in development, demos and tests. It integrates simple thermal
// physics on an injected Clock, simulates the people who open the doors (after a remote unlock,
// or at the unit with a keypad code, a key or service mode, reported in DoorState.Via), lets the
// outside temperature be held steady (SetAmbient), and can inject the faults the hub must detect
// (jammed, ajar and forced doors, failed or stuck-on heater, failed compressor, stuck and dead
// sensors). It has a keypad (Keypad): EnterCode plays a resident typing a pickup code.
package hardware
