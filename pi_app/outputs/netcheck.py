def check_sacn(cfg):
    return []


def check_artnet(cfg):
    return []
