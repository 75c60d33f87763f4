# BLE advertisement codecs: adv (AD structures), bthome (+ bthome_encode, ccm), ibeacon, eddystone.
