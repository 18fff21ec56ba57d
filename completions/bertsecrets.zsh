
#compdef bertsecrets

_bertsecrets_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _BERTSECRETS_COMPLETE=complete_zsh bertsecrets)
}

compdef _bertsecrets_completion bertsecrets

