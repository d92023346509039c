"""Local tooling: start emulators and function servers, run the local pipeline. Not deployed."""
