package b

y if { 1 &&& 2 }
