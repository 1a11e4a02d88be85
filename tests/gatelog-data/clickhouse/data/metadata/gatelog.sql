ATTACH DATABASE gatelog
ENGINE = Ordinary
