// Package starling is Starling's domain: the post and the author's profile,
// the errors every layer branches on, and the rules for the text they carry
// (usernames, display names, post text that XML can hold).
//
// It is the leaf of the import graph: every other package of the module may
// import it, and it imports none of them. Nothing here does I/O.
package starling
