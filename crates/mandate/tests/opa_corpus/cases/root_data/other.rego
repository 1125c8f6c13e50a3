package other

x := {"y": [1, 2, {"z": null}]}
