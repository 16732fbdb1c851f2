"""One module per provider family; ``fleet.notify.registry`` maps Flux's type names to them."""
