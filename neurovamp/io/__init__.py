"""Reading and writing recordings: NWB files and the public five-rat release."""
