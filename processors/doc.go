// Package processors holds cdcrecon's stages — decode, normalise, dedupe,
// reconcile — as plain Go over domain types, one subpackage per stage. They
// import neither Watermill nor franz-go; pipeline/ adapts them into
// Watermill handlers.
package processors
