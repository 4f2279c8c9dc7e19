"""The three roads out of superposition: experiments composed from the library."""
