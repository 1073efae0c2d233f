package main

// exitError ends the program with a given exit status: main prints Msg on
// stderr when it is not empty and exits with Code. Status 2 is a usage
// error; 1 a failure that is not the command line's fault (for example a
// bad record found by `audit verify`). Any other error from run exits 1.
type exitError struct {
	Code int
	Msg  string
}

func (e *exitError) Error() string { return e.Msg }
