package fleet

import "context"

// contextKey keys the values this package keeps in a context; a type of its own keeps them
// apart from every other package's.
type contextKey int

const actorContextKey contextKey = iota

// NewContextWithActor returns a copy of ctx carrying actor: whom the services called with it act
// for. Each service records the actor in the audit trail with its own change, so that no caller
// has to audit for it, and none can forget to.
func NewContextWithActor(ctx context.Context, actor Actor) context.Context {
	return context.WithValue(ctx, actorContextKey, actor)
}

// ActorFromContext returns the actor ctx carries, or the zero Actor (whose ID is "") if none.
func ActorFromContext(ctx context.Context) Actor {
	a, _ := ctx.Value(actorContextKey).(Actor)
	return a
}

// ActorRequired returns the actor ctx carries, or, when it carries none, an EINTERNAL *Error
// saying that what (the change asked for) was refused: every change is made on someone's
// behalf, and one the audit trail could not attribute is not made at all. No actor is a bug in
// the caller, never the fault of whoever the caller serves.
func ActorRequired(ctx context.Context, what string) (Actor, error) {
	a := ActorFromContext(ctx)
	if a.ID == "" {
		return a, Errorf(EINTERNAL, "%s refused: no actor in the context to record it for", what)
	}
	return a, nil
}
