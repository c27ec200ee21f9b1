;; Exports `trellis:example/greeter` like the example's greeter, but `greet` spins
;; until the host interrupts it: with `concurrency: 1`, one call holds the only slot.
(component
  (core module $main
    (memory (export "memory") 1)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (i32.const 1024))
    (func (export "greet") (param i32 i32) (result i32)
      (loop $forever (br $forever))
      (i32.const 0)))
  (core instance $main (instantiate $main))
  (func $greet (param "name" string) (result string)
    (canon lift (core func $main "greet") (memory (core memory $main "memory")) (realloc (core func $main "cabi_realloc"))))
  (instance $greeter (export "greet" (func $greet)))
  (export "trellis:example/greeter@0.1.0" (instance $greeter)))
