package app

name := "outer"
