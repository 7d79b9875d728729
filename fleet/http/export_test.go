package http

// ServeListener serves on a listener the test controls, to make serving fail as Open's cannot.
var ServeListener = (*Server).serve
